"""Messages to members through a pluggable channel (development inbox, log, SMTP email)."""
