"""Scenario testing for flows: the scenario model and loader, the in-process runner, coverage and reports.

Import the parts you need from their modules (``flowengine.testing.loader``, ``.runner``, ``.coverage``);
this package module stays light so the pytest plugin loads quickly.
"""
