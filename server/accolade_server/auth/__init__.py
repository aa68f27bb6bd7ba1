"""API keys, scopes and the checks applied to every call."""
