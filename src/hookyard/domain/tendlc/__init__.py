"""10DLC (The Campaign Registry): brands, campaigns, per-carrier campaign status, vetting.

`tables` owns the schema, `catalogue` the event types TCR sends, `carriers` the MNO ids,
and `service.apply` the state transitions, run inside the worker's transaction.
"""
