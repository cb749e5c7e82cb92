"""The mobile network operators (MNOs) TCR names by network id in campaign operations."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# TCR's MNO network ids (`GET /v2/enum/mno`). An id missing here is still stored: a new
# carrier appears as its id until it is added to this table.
CARRIERS: Mapping[str, str] = MappingProxyType(
    {
        "10017": "AT&T",
        "10035": "T-Mobile",
        "10999": "Verizon Wireless",
        "10038": "US Cellular",
        "10037": "ClearSky",
        "10043": "Interop",
    }
)


def carrier_name(mno_id: str) -> str:
    return CARRIERS.get(mno_id, f"MNO {mno_id}")
