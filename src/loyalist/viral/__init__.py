"""Viral mechanics (裂变): friend-assist (好友助力) and groups (拼团)."""
