"""Households (家庭账户): a main member's points pool shared with invited members."""
