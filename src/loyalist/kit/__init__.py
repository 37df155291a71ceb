"""Building blocks with no business words in them."""
