"""Tests of the flowengine subcommands."""
