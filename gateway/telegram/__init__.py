"""The Telegram leg: the gateway account, its companion bot, messages, login, privacy, calls.

Never imports :mod:`gateway.sip`; ``gateway/calls`` joins the two legs.

* :mod:`~gateway.telegram.account`  the account's Telethon client, session file, connection state
* :mod:`~gateway.telegram.login`    phone → code → password, driven by the web UI
* :mod:`~gateway.telegram.bot`      the companion bot that carries buttons (inline mode)
* :mod:`~gateway.telegram.messages` Member, buttons, sent-message handles, inbound events, Messenger
* :mod:`~gateway.telegram.privacy`  may the gateway call a member, and what they should change
* :mod:`~gateway.telegram.errors`   Telegram failures as sentences for the user
* :mod:`~gateway.telegram.listeners` callbacks for bot and message events, failures logged
* :mod:`~gateway.telegram.call`     private calls: ring, answer, reject, hang up, 10 ms PCM frames
* :mod:`~gateway.telegram.service`  TelegramSide: all of the above, as the gateway owns it
"""
