"""Tests of flowengine.store."""
