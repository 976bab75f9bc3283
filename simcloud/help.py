"""help.getConfig and help.getNearestDc: the sim is one DC, number 2, at the server's address.

Telethon asks for the config inside initConnection on every connect; the
limits are Telegram's current values, so code that reads them sees real numbers.
"""

from __future__ import annotations

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, handler
from simcloud.history import MAX_MESSAGE_LENGTH
from simcloud.messages import EDIT_TIME_LIMIT
from simcloud.state import state_of
from simcloud.updates import tl_date

DC_ID = 2
CONFIG_LIFETIME = 3600
# Call timers Telegram advertises (ms); simcloud.phone applies the ring timeout itself.
CALL_RECEIVE_TIMEOUT_MS = 20_000
CALL_RING_TIMEOUT_MS = 90_000
CALL_CONNECT_TIMEOUT_MS = 30_000
CALL_PACKET_TIMEOUT_MS = 10_000


def server_address(cloud: Cloud) -> tuple[str, int]:
    """Where CloudServer listens (set by it on start); a placeholder before that."""
    address = vars(cloud).get("server_address")
    return address if address is not None else ("127.0.0.1", 443)


@handler(functions.help.GetConfigRequest)
async def get_config(
    cloud: Cloud, caller: Caller, req: functions.help.GetConfigRequest
) -> types.Config:
    host, port = server_address(cloud)
    now = state_of(cloud).now()
    return types.Config(
        date=tl_date(now),
        expires=tl_date(now + CONFIG_LIFETIME),
        test_mode=False,
        this_dc=DC_ID,
        dc_options=[types.DcOption(id=DC_ID, ip_address=host, port=port, static=True)],
        dc_txt_domain_name="",
        chat_size_max=200,
        megagroup_size_max=200_000,
        forwarded_count_max=100,
        online_update_period_ms=210_000,
        offline_blur_timeout_ms=5_000,
        offline_idle_timeout_ms=30_000,
        online_cloud_timeout_ms=300_000,
        notify_cloud_delay_ms=30_000,
        notify_default_delay_ms=1_500,
        push_chat_period_ms=60_000,
        push_chat_limit=2,
        edit_time_limit=EDIT_TIME_LIMIT,
        revoke_time_limit=2_147_483_647,
        revoke_pm_time_limit=2_147_483_647,
        rating_e_decay=2_419_200,
        stickers_recent_limit=200,
        channels_read_media_period=604_800,
        call_receive_timeout_ms=CALL_RECEIVE_TIMEOUT_MS,
        call_ring_timeout_ms=CALL_RING_TIMEOUT_MS,
        call_connect_timeout_ms=CALL_CONNECT_TIMEOUT_MS,
        call_packet_timeout_ms=CALL_PACKET_TIMEOUT_MS,
        me_url_prefix="https://t.me/",
        caption_length_max=1024,
        message_length_max=MAX_MESSAGE_LENGTH,
        webfile_dc_id=DC_ID,
        default_p2p_contacts=True,
        revoke_pm_inbox=True,
        tmp_sessions=None,
    )


@handler(functions.help.GetNearestDcRequest)
async def get_nearest_dc(
    cloud: Cloud, caller: Caller, req: functions.help.GetNearestDcRequest
) -> types.NearestDc:
    return types.NearestDc(country="ZZ", this_dc=DC_ID, nearest_dc=DC_ID)
