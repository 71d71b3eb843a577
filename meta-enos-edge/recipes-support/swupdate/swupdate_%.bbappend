# EnOS Edge: SWUpdate as the A/B update engine (meta-swupdate recipe, our configuration).
# Everything here applies with DISTRO = "enos-edge" only (Yocto layer compliance).
#
# - defconfig: CMS-signed images only, systemd, GRUB + U-Boot environments, raw/rawfile handlers,
#   zstd; no web server, suricatta, downloader, scripts or Lua (see the file's header).
# - swupdate.cfg, the conf.d snippet that starts the daemon with the software set of the inactive
#   slot, /etc/hwrevision; systemd drop-ins: the daemon sandboxed and ordered after the ESP mount,
#   its IPC sockets in /run/swupdate, 0660 root:enos-ota (meta-swupdate's socket unit puts them in
#   /tmp with the default mode 0666).
# - the certificate the daemon trusts: ENOS_SIGNING_CERT, the public half of the pair that signs
#   the bundles (enos-edge-update uses ENOS_SIGNING_KEY + ENOS_SIGNING_CERT). Set both in the OEM's
#   kas file or local.conf; scripts/oem-signing-key creates a pair. tests/system/keys/ holds a
#   DEVELOPMENT ONLY pair for example builds; never ship it.
# - ENOS_HW_BOARD / ENOS_HW_REVISION (default "enos-${MACHINE}" / "1.0") name the board in
#   /etc/hwrevision; enos-edge-update puts the same values into sw-description.

FILESEXTRAPATHS:prepend:enos-edge := "${THISDIR}/files:"

# meta-swupdate's SRC_URI already lists file://defconfig: FILESEXTRAPATHS makes it ours.
SRC_URI:append:enos-edge = " \
    file://swupdate.cfg \
    file://10-enos-args \
    file://swupdate-enos.conf \
    file://swupdate-socket-enos.conf \
    file://hwrevision.in \
"

do_install:append:enos-edge() {
    cert="${ENOS_SIGNING_CERT}"
    if [ -z "$cert" ] || [ ! -r "$cert" ]; then
        bbfatal "ENOS_SIGNING_CERT must name the PEM certificate that verifies update bundles (got '$cert'); scripts/oem-signing-key creates a key pair"
    fi
    board="${@d.getVar('ENOS_HW_BOARD') or 'enos-' + d.getVar('MACHINE')}"
    revision="${@d.getVar('ENOS_HW_REVISION') or '1.0'}"
    install -d ${D}${sysconfdir}/swupdate
    install -m 0644 ${UNPACKDIR}/swupdate.cfg ${D}${sysconfdir}/swupdate.cfg
    install -m 0644 "$cert" ${D}${sysconfdir}/swupdate/enos-signing.crt
    sed -e "s/@@ENOS_HW_BOARD@@/$board/" -e "s/@@ENOS_HW_REVISION@@/$revision/" \
        ${UNPACKDIR}/hwrevision.in > ${D}${sysconfdir}/hwrevision
    chmod 0644 ${D}${sysconfdir}/hwrevision
    install -d ${D}${libdir}/swupdate/conf.d
    install -m 0644 ${UNPACKDIR}/10-enos-args ${D}${libdir}/swupdate/conf.d/10-enos-args
    install -d ${D}${systemd_system_unitdir}/swupdate.service.d
    install -m 0644 ${UNPACKDIR}/swupdate-enos.conf ${D}${systemd_system_unitdir}/swupdate.service.d/enos.conf
    install -d ${D}${systemd_system_unitdir}/swupdate.socket.d
    install -m 0644 ${UNPACKDIR}/swupdate-socket-enos.conf ${D}${systemd_system_unitdir}/swupdate.socket.d/enos.conf
}

# A new trusted certificate must rebuild the package.
do_install[file-checksums] += "${@'%s:True' % d.getVar('ENOS_SIGNING_CERT') if d.getVar('ENOS_SIGNING_CERT') else ''}"

FILES:${PN}:append:enos-edge = " \
    ${sysconfdir}/swupdate.cfg \
    ${sysconfdir}/swupdate/enos-signing.crt \
    ${sysconfdir}/hwrevision \
    ${systemd_system_unitdir}/swupdate.service.d/enos.conf \
    ${systemd_system_unitdir}/swupdate.socket.d/enos.conf \
"
CONFFILES:${PN}:append:enos-edge = " ${sysconfdir}/swupdate.cfg"

# The daemon calls enos-bootslot at start (10-enos-args) and the bootloader tools at run time;
# its sockets belong to the group enos-ota (enos-edge-services-common creates it).
RDEPENDS:${PN}:append:enos-edge = " enos-bootslot enos-edge-services-common"
