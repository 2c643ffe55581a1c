"""Tests of flowengine.flow."""
