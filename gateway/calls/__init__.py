"""The call layer: joins SIP lines and Telegram members (issue 4)."""
