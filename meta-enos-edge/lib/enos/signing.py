"""Which certificate an EnOS Edge image may trust for its update bundles.

The image trusts exactly one certificate (ENOS_SIGNING_CERT, installed as
/etc/swupdate/enos-signing.crt); whoever holds the matching key can install software on every
gateway built with it. The repository's development pair (tests/system/keys/) is public, so an
image may trust it only when the build says it is a development build
(ENOS_ALLOW_DEV_SIGNING_KEY = "1", set by kas/dev.yml and nowhere else).

Used by classes/enos-signing-check.bbclass at the start of every build, and by
scripts/check-layer-static against the kas files, so both apply the same rule.
"""
import base64
import os
import re

DEV_CERT = os.path.join("tests", "system", "keys", "enos-dev-signing.crt")


def _der(path):
    """The certificate's DER bytes (a copy of the development certificate under another name or
    with other line breaks is still the development certificate); None if not PEM."""
    with open(path, "rb") as f:
        text = f.read().decode("ascii", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    if not m:
        return None
    try:
        return base64.b64decode("".join(m.group(1).split()))
    except ValueError:
        return None


def problem(getvar, topdir):
    """None when the configuration may be built, else what is wrong, in words for the OEM.
    getvar(name) answers a configuration variable (None when unset); topdir is the repository."""
    cert = (getvar("ENOS_SIGNING_CERT") or "").strip()
    key = (getvar("ENOS_SIGNING_KEY") or "").strip()
    how = ("Name your own pair in your kas file or local.conf (ENOS_SIGNING_KEY and ENOS_SIGNING_CERT; "
           "scripts/oem-signing-key creates one), or build a development image with kas/dev.yml.")
    if not cert or not key:
        missing = " and ".join(v for v, val in (("ENOS_SIGNING_CERT", cert), ("ENOS_SIGNING_KEY", key)) if not val)
        return "EnOS Edge: %s not set: the image must trust the certificate of the key that signs its updates. %s" % (missing, how)
    for var, path in (("ENOS_SIGNING_CERT", cert), ("ENOS_SIGNING_KEY", key)):
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            return "EnOS Edge: %s = \"%s\": no such readable file. %s" % (var, path, how)
    der = _der(cert)
    if der is None:
        return "EnOS Edge: ENOS_SIGNING_CERT = \"%s\" is not a PEM certificate. %s" % (cert, how)
    dev = os.path.join(topdir, DEV_CERT)
    if os.path.isfile(dev) and der == _der(dev) and (getvar("ENOS_ALLOW_DEV_SIGNING_KEY") or "") != "1":
        return ("EnOS Edge: ENOS_SIGNING_CERT = \"%s\" is the repository's DEVELOPMENT certificate: its key is "
                "public, so anyone could sign updates for this image. %s" % (cert, how))
    return None
