"""scimgate: a SCIM 2.0 and LDAP provisioning gateway for password-manager organizations.

The package holds the Flask application (`app`), the store (`store`), the SCIM protocol layer
(`scim`), the provisioning engine (`provisioning`), the member lifecycle (`lifecycle`), delivery
(`outbox`) and the admin surface (`admin`). Sources that are polled live in `connectors`, the pure
mapping rules in `mappings`.
"""

__version__ = "0.1.0"
