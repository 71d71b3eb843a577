SUMMARY = "EnOS Edge: the public key that verifies resource packages"
DESCRIPTION = "Installs /etc/enos/package-key.pem, the public half of the OEM's ed25519 key that signs \
               resource packages (configuration, point tables, device models, certificates; \
               docs/packages.md). The collector refuses every package without it. ENOS_PACKAGE_KEY names \
               the file; the enos-signing-check class refuses a missing key, a private key and the \
               repository's development key outside kas/dev.yml."
HOMEPAGE = "https://github.com/enos-edge/enos-edge"
BUGTRACKER = "https://github.com/enos-edge/enos-edge/issues"
SECTION = "base"
CVE_PRODUCT = "enos-edge"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The key is a configuration variable, not a file of the layer: nothing to fetch.
SRC_URI = ""
INHIBIT_DEFAULT_DEPS = "1"
do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    key="${ENOS_PACKAGE_KEY}"
    if [ -z "$key" ] || [ ! -r "$key" ]; then
        bbfatal "ENOS_PACKAGE_KEY must name the ed25519 public key (PEM) that verifies resource packages (got '$key'); scripts/package keygen creates a pair"
    fi
    install -d ${D}${sysconfdir}/enos
    install -m 0644 "$key" ${D}${sysconfdir}/enos/package-key.pem
}

# Another key must rebuild the package.
do_install[file-checksums] += "${@'%s:True' % d.getVar('ENOS_PACKAGE_KEY') if d.getVar('ENOS_PACKAGE_KEY') else ''}"
do_install[vardeps] += "ENOS_PACKAGE_KEY"

# Another key per machine is possible (a kas file per machine).
PACKAGE_ARCH = "${MACHINE_ARCH}"
FILES:${PN} += "${sysconfdir}/enos/package-key.pem"
