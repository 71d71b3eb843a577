# EnOS Edge: SWUpdate as the A/B update engine (meta-swupdate recipe, our configuration).
#
# - defconfig: CMS-signed images only, systemd, GRUB + U-Boot environments, raw/rawfile handlers,
#   zstd; no web server, suricatta, downloader, scripts or Lua (see the file's header).
# - swupdate.cfg, the conf.d snippet that starts the daemon with the software set of the inactive
#   slot, a systemd drop-in ordering it after the ESP mount, /etc/hwrevision.
# - the certificate the daemon trusts: ENOS_SIGNING_CERT, the public half of the pair that signs
#   the bundles (enos-edge-update uses ENOS_SIGNING_KEY + ENOS_SIGNING_CERT). Set both in the OEM's
#   kas file or local.conf; scripts/oem-signing-key creates a pair. tests/system/keys/ holds a
#   DEVELOPMENT ONLY pair for example builds; never ship it.

FILESEXTRAPATHS:prepend := "${THISDIR}/files:"

SRC_URI += " \
    file://defconfig \
    file://swupdate.cfg \
    file://10-enos-args \
    file://swupdate-enos.conf \
    file://hwrevision.in \
"

# Board name and revision checked against sw-description's hardware-compatibility.
ENOS_HW_BOARD ??= "enos-${MACHINE}"
ENOS_HW_REVISION ??= "1.0"
ENOS_SIGNING_CERT ??= ""

# The daemon calls enos-bootslot at start (10-enos-args) and the bootloader tools at run time.
RDEPENDS:${PN} += "enos-bootslot"

do_install:append() {
    if [ -z "${ENOS_SIGNING_CERT}" ] || [ ! -r "${ENOS_SIGNING_CERT}" ]; then
        bbfatal "ENOS_SIGNING_CERT must name the PEM certificate that verifies update bundles (got '${ENOS_SIGNING_CERT}'); scripts/oem-signing-key creates a key pair"
    fi
    install -d ${D}${sysconfdir}/swupdate
    install -m 0644 ${UNPACKDIR}/swupdate.cfg ${D}${sysconfdir}/swupdate.cfg
    install -m 0644 ${ENOS_SIGNING_CERT} ${D}${sysconfdir}/swupdate/enos-signing.crt
    sed -e 's/@@ENOS_HW_BOARD@@/${ENOS_HW_BOARD}/' -e 's/@@ENOS_HW_REVISION@@/${ENOS_HW_REVISION}/' \
        ${UNPACKDIR}/hwrevision.in > ${D}${sysconfdir}/hwrevision
    chmod 0644 ${D}${sysconfdir}/hwrevision
    install -d ${D}${libdir}/swupdate/conf.d
    install -m 0644 ${UNPACKDIR}/10-enos-args ${D}${libdir}/swupdate/conf.d/10-enos-args
    install -d ${D}${systemd_system_unitdir}/swupdate.service.d
    install -m 0644 ${UNPACKDIR}/swupdate-enos.conf ${D}${systemd_system_unitdir}/swupdate.service.d/enos.conf
}

# A change of the trusted certificate must rebuild the package.
do_install[file-checksums] += "${@'${ENOS_SIGNING_CERT}:True' if d.getVar('ENOS_SIGNING_CERT') else ''}"

FILES:${PN} += " \
    ${sysconfdir}/swupdate.cfg \
    ${sysconfdir}/swupdate/enos-signing.crt \
    ${sysconfdir}/hwrevision \
    ${systemd_system_unitdir}/swupdate.service.d/enos.conf \
"
CONFFILES:${PN} += "${sysconfdir}/swupdate.cfg"
