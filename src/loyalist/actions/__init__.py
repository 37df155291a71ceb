"""Effects any rule or flow may run, each applied at most once per cause (see registry.py)."""
