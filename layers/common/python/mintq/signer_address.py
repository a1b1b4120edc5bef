"""Print the Ethereum address of AWS KMS signer keys, to grant it the minter role before deploying.

    python -m mintq.signer_address --kms-key-id arn:aws:kms:us-east-1:111122223333:key/1234abcd-...

One address per line, in the order the keys are given; without ``--kms-key-id`` the keys of
``MINTQ_SIGNER_KMS_KEY_IDS``. AWS credentials, region and endpoint come from the usual AWS
settings (``--region`` overrides the region). Exit status 2 for a key that cannot sign for
mintq (wrong spec or usage, missing, not permitted), 1 when KMS is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mintq import errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mintq.signer_address",
        description="Print the Ethereum address of AWS KMS signer keys (spec ECC_SECG_P256K1).",
    )
    parser.add_argument(
        "--kms-key-id",
        action="append",
        dest="key_ids",
        metavar="KEY",
        help="KMS key id, key ARN or alias (repeat for a pool); default: MINTQ_SIGNER_KMS_KEY_IDS",
    )
    parser.add_argument("--region", help="AWS region of the keys (default: the AWS settings)")
    args = parser.parse_args(argv)
    from mintq import config, kms_signer

    try:
        key_ids = args.key_ids or config.signer_kms_key_ids()
        if not key_ids:
            parser.error("give --kms-key-id or set MINTQ_SIGNER_KMS_KEY_IDS")
        client = kms_signer.kms_client(region_name=args.region)
        for key_id in key_ids:
            print(kms_signer.key_address(key_id, client=client))
    except errors.ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except errors.SignerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
