import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def machine_trusts_the_example_cas(tmp_path_factory):
    """The test machine trusts the private CAs the examples use, as a user would have installed
    them (the platform refuses a private CA Pulumi's machine does not trust): a CA bundle in
    SSL_CERT_FILE and no other trust directory. Tests of the refusal change these variables."""
    from harness import TRUSTED_CA_PEMS

    folder = tmp_path_factory.mktemp("trust")
    bundle = folder / "ca-certificates.crt"
    bundle.write_text("".join(TRUSTED_CA_PEMS))
    saved = {key: os.environ.get(key) for key in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ["SSL_CERT_FILE"] = str(bundle)
    os.environ["SSL_CERT_DIR"] = str(folder / "no-such-directory")
    yield bundle
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
