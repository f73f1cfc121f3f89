"""Helpers shared by the tests (generated data, stand-in models, workflow scratch copies); not tests."""
