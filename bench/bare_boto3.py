"""The real-account baseline: a bare boto3 script that lists the given regions' instances.

``python bench/bare_boto3.py REGION...`` prints one line per instance, region after region,
using the standard credential chain and ``AWS_ENDPOINT_URL``, as a script written without
runctl-tui would.
"""

from __future__ import annotations

import sys

import boto3.session


def main(regions: list[str]) -> int:
    """Print region, id, type, state and Name of every instance."""
    session = boto3.session.Session()
    for region in regions:
        client = session.client("ec2", region_name=region)
        for page in client.get_paginator("describe_instances").paginate():
            for reservation in page.get("Reservations", []):
                for entry in reservation.get("Instances", []):
                    tags = {t.get("Key", ""): t.get("Value", "") for t in entry.get("Tags", [])}
                    state = entry.get("State", {}).get("Name", "?")
                    kind = entry.get("InstanceType", "?")
                    print(region, entry.get("InstanceId"), kind, state, tags.get("Name", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
