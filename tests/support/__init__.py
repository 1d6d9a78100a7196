"""Test helpers shared by the suites: servers, processes, the started stack, factories, parsers."""
