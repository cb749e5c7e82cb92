"""Hypothesis strategies shared by the property tests (tests/test_properties.py) and the
ingress fuzzers (tests/test_fuzz_ingress.py): any JSON value, and bodies shaped like each
test source's provider."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

# Any JSON value, strings including lone surrogates (JSON can carry them as \ud800 escapes)
# and floats including NaN and infinities (Python's json reads and writes those tokens).
any_text = st.text(st.characters(exclude_categories=()), max_size=24)
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | any_text | st.text(max_size=400)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=16,
)


# Bodies shaped like each provider's, with every field free to take other values too, so
# that the parsers get past their first checks and into the code that builds keys.
fixed_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
iso_times = st.datetimes(timezones=fixed_offsets | st.none()).map(datetime.isoformat)
# Strings that broke storage or hashing before: NUL, lone surrogates, longer than a column.
awkward_text = st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u00e9", "k" * 301])
# Identifiers as providers send them (numbers, strings of any length and content) ...
scalar_ids = st.one_of(st.integers(), st.text(max_size=400), any_text, awkward_text)
# ... and, less often, any JSON value at all.
any_ids = st.one_of(st.integers(), st.text(max_size=400), any_text, awkward_text, json_values)


def shaped_bodies(ids: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    names = st.one_of(st.text(min_size=1, max_size=40), any_text, awkward_text, ids)
    timestamps = iso_times | ids
    hubspot = st.lists(
        st.fixed_dictionaries(
            {
                "eventId": ids,
                "subscriptionType": st.sampled_from(["company.propertyChange"]) | names,
            },
            optional={
                "objectId": ids,
                "occurredAt": st.integers() | ids,
                "propertyValue": json_values,
                "portalId": ids,
            },
        ),
        min_size=1,
        max_size=4,
    )
    change = st.fixed_dictionaries(
        {"field": st.sampled_from(["message_template_status_update"]) | names},
        optional={"value": json_values | st.fixed_dictionaries({"message_template_id": ids})},
    )
    meta = st.fixed_dictionaries(
        {
            "object": st.just("whatsapp_business_account"),
            "entry": st.lists(
                st.fixed_dictionaries(
                    {
                        "id": ids,
                        "time": st.integers() | ids,
                        "changes": st.lists(change, min_size=1, max_size=3),
                    }
                ),
                min_size=1,
                max_size=3,
            ),
        }
    )
    c2s = st.fixed_dictionaries(
        {"id": ids, "hook_action": st.sampled_from(["on_create_lead"]) | names},
        optional={
            "attributes": st.fixed_dictionaries(
                {}, optional={"updated_at": timestamps, "customer": json_values}
            )
        },
    )
    tcr = st.fixed_dictionaries(
        {"eventType": st.sampled_from(["BRAND_UPDATE"]) | names},
        optional={
            "campaignId": ids,
            "brandId": ids,
            "timestamp": timestamps,
            "mnoStatuses": json_values,
        },
    )
    generic = st.fixed_dictionaries({"type": names}, optional={"data": json_values}) | json_values
    return {
        "demo": generic,
        "signed": generic,
        "tokened": generic,
        "hubspot": hubspot,
        "meta": meta,
        "c2s": c2s,
        "tcr-brands": tcr,
        "tcr-open": tcr,
    }


SHAPED = shaped_bodies(any_ids)
REALISTIC = shaped_bodies(scalar_ids)
