SUMMARY = "EnOS Edge base system integration: data and boot partitions, persistent journal"
DESCRIPTION = "Mounts the data partition (PARTLABEL enos-data) at /data and the boot partition at /boot/efi, grows the data partition to fill the disk on first boot, and keeps /var/log and the journal on /data so the root file system can stay read-only."
HOMEPAGE = "https://github.com/enos-edge/enos-edge"
BUGTRACKER = "https://github.com/enos-edge/enos-edge/issues"
SECTION = "base"
CVE_PRODUCT = "enos-edge"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "file://data.mount \
           file://boot-efi.mount \
           file://enos-data-layout.service \
           file://var-log.mount \
           file://journald-enos-edge.conf \
           file://enos-watchdog.conf \
           file://repart-20-root-a.conf \
           file://repart-30-root-b.conf \
           file://repart-40-data.conf \
           "

S = "${UNPACKDIR}"

inherit systemd allarch

do_install() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/data.mount ${D}${systemd_system_unitdir}/data.mount
    install -m 0644 ${UNPACKDIR}/boot-efi.mount ${D}${systemd_system_unitdir}/boot-efi.mount
    install -m 0644 ${UNPACKDIR}/enos-data-layout.service ${D}${systemd_system_unitdir}/enos-data-layout.service
    install -m 0644 ${UNPACKDIR}/var-log.mount ${D}${systemd_system_unitdir}/var-log.mount

    install -d ${D}${systemd_unitdir}/journald.conf.d
    install -m 0644 ${UNPACKDIR}/journald-enos-edge.conf ${D}${systemd_unitdir}/journald.conf.d/50-enos-edge.conf

    # systemd feeds the hardware watchdog: a hung kernel or PID 1 resets the board.
    install -d ${D}${systemd_unitdir}/system.conf.d
    install -m 0644 ${UNPACKDIR}/enos-watchdog.conf ${D}${systemd_unitdir}/system.conf.d/50-enos-watchdog.conf

    install -d ${D}${nonarch_libdir}/repart.d
    for p in 20-root-a 30-root-b 40-data; do
        install -m 0644 ${UNPACKDIR}/repart-$p.conf ${D}${nonarch_libdir}/repart.d/$p.conf
    done

    # Mount points on the read-only root.
    install -d ${D}/data ${D}/boot/efi
}

FILES:${PN} += "${systemd_system_unitdir} \
                ${systemd_unitdir}/journald.conf.d \
                ${systemd_unitdir}/system.conf.d \
                ${nonarch_libdir}/repart.d \
                /data \
                /boot/efi"

SYSTEMD_SERVICE:${PN} = "data.mount boot-efi.mount enos-data-layout.service var-log.mount"

RDEPENDS:${PN} = "e2fsprogs-resize2fs systemd"
