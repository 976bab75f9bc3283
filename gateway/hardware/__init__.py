"""The box itself: status LEDs, the button, setup mode (and the local handset).

Not an RFC module.  The decisions are sans-IO and tested without GPIO:
:mod:`gateway.hardware.indicator` (a status snapshot to LED patterns),
:func:`gateway.hardware.button.classify` (a press's length to what it does),
:mod:`gateway.hardware.setupmode` (the setup-mode file the web UI reads).
:mod:`gateway.hardware.leds` and :mod:`gateway.hardware.button` drive gpiozero;
without GPIO (a laptop, a container, CI) they log once and do nothing.
This package's ``__init__`` imports nothing, so the web UI can read the
setup-mode file without loading gpiozero.
"""
