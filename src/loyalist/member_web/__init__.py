"""The member page at /m: sign-in by phone and one-time code, balance, tier, rewards."""
