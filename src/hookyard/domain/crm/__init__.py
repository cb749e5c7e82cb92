"""HubSpot CRM: customers, field-level sync state and conflicts for a person to resolve."""
