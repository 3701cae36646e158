"""CDK stack tests (one synth per session, see conftest.py)."""
