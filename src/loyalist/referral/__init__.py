"""Referrals (老带新): codes, attribution, qualification, rewards, holds, leaders."""
