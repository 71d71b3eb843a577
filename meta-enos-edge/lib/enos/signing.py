"""Which certificate an EnOS Edge image may trust for its update bundles, and which key for its
resource packages (package_key_problem, at the end).

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
    return _pem_der(path, "CERTIFICATE")


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


# --- resource packages ----------------------------------------------------------------------------
# The collector accepts a resource package (docs/packages.md) only when it is signed by the key whose
# public half is /etc/enos/package-key.pem: ENOS_PACKAGE_KEY names that file (an ed25519 public key
# in PEM, as `openssl pkey -pubout` or `scripts/package keygen` writes it). The repository's
# development key (tests/system/keys/enos-dev-package.*) is public, so the same rule as above.

DEV_PACKAGE_KEY = os.path.join("tests", "system", "keys", "enos-dev-package.pem")
# SubjectPublicKeyInfo of an ed25519 key: this prefix, then the 32 key bytes.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _pem_der(path, label):
    """The DER bytes of the first "-----BEGIN <label>-----" block of a file; None if there is none."""
    with open(path, "rb") as f:
        text = f.read().decode("ascii", "replace")
    m = re.search(r"-----BEGIN %s-----(.*?)-----END %s-----" % (label, label), text, re.S)
    if not m:
        return None
    try:
        return base64.b64decode("".join(m.group(1).split()))
    except ValueError:
        return None


def package_key_problem(getvar, topdir):
    """None when the package verification key may be built into the image, else what is wrong,
    in words for the OEM (same arguments as problem())."""
    key = (getvar("ENOS_PACKAGE_KEY") or "").strip()
    how = ("Name the public half of your own ed25519 package-signing key in your kas file or local.conf "
           "(ENOS_PACKAGE_KEY; `scripts/package keygen NAME` or `openssl genpkey -algorithm ed25519` then "
           "`openssl pkey -pubout` creates one), or build a development image with kas/dev.yml.")
    if not key:
        return ("EnOS Edge: ENOS_PACKAGE_KEY not set: the image must hold the public key that verifies "
                "resource packages (/etc/enos/package-key.pem), else it refuses every package. %s" % how)
    if not os.path.isfile(key) or not os.access(key, os.R_OK):
        return "EnOS Edge: ENOS_PACKAGE_KEY = \"%s\": no such readable file. %s" % (key, how)
    if _pem_der(key, "PRIVATE KEY") is not None:
        return ("EnOS Edge: ENOS_PACKAGE_KEY = \"%s\" holds a PRIVATE key: the image needs only the public "
                "half, and the private key must never be on a gateway. %s" % (key, how))
    der = _pem_der(key, "PUBLIC KEY")
    if der is None or len(der) != 44 or not der.startswith(_ED25519_SPKI_PREFIX):
        return "EnOS Edge: ENOS_PACKAGE_KEY = \"%s\" is not an ed25519 public key in PEM. %s" % (key, how)
    dev = os.path.join(topdir, DEV_PACKAGE_KEY)
    if os.path.isfile(dev) and der == _pem_der(dev, "PUBLIC KEY") and (getvar("ENOS_ALLOW_DEV_SIGNING_KEY") or "") != "1":
        return ("EnOS Edge: ENOS_PACKAGE_KEY = \"%s\" is the repository's DEVELOPMENT package key: its private "
                "half is public, so anyone could sign packages that reconfigure this image's devices. %s" % (key, how))
    return None


def dev_package_key_warning(getvar, topdir):
    """The warning a development build prints when it trusts the development package key, else None."""
    key = (getvar("ENOS_PACKAGE_KEY") or "").strip()
    dev = os.path.join(topdir, DEV_PACKAGE_KEY)
    if not key or not os.path.isfile(key) or not os.path.isfile(dev):
        return None
    if _pem_der(key, "PUBLIC KEY") != _pem_der(dev, "PUBLIC KEY"):
        return None
    return ("EnOS Edge: THIS IMAGE TRUSTS THE DEVELOPMENT PACKAGE KEY (%s): anyone can sign resource "
            "packages it accepts. Development builds only; never ship it." % DEV_PACKAGE_KEY)
