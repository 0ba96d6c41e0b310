"""The password the database tests put in DSNs, to look for it where it must not show."""

SECRET = "Zq9-s3cr3t"
