SUMMARY = "EnOS Edge A/B boot slot selection with boot counting"
DESCRIPTION = "The bootloader side of the A/B scheme (GRUB grub.cfg with an environment block on \
               the ESP for x86-64, a U-Boot boot script that counts every boot in bootcount \
               for the Raspberry Pi) and enos-bootslot, the tool that reads and arms slots from Linux \
               (current, selected, set-next, commit, rollback). Variables: docs/boot-slots.md."
HOMEPAGE = "https://github.com/enos-edge/enos-edge"
BUGTRACKER = "https://github.com/enos-edge/enos-edge/issues"
SECTION = "base"
CVE_PRODUCT = "enos-edge"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# boot.scr is compiled for every machine (it is small): the recipe needs no machine overrides.
DEPENDS = "u-boot-mkimage-native"

SRC_URI = " \
    file://enos-bootslot \
    file://grub.cfg \
    file://boot.cmd \
    file://fw_env.config \
    file://enos-bootcount.cfg \
    file://enos-trial-guard \
    file://enos-trial-guard.service \
"

S = "${UNPACKDIR}"

inherit deploy systemd

# Trial boots of a new slot before the bootloader falls back to the other one.
ENOS_BOOTLIMIT ??= "3"

do_configure[noexec] = "1"

do_compile() {
    # The initial GRUB environment block, written by the same code the running system uses
    # (no "# WARNING" line: SWUpdate's grubenv parser mishandles it).
    rm -f ${B}/grubenv
    ENOS_BOOTSLOT_BACKEND=grub ENOS_BOOTSLOT_GRUBENV=${B}/grubenv ENOS_BOOTSLOT_LOCK=${B}/bootslot.lock \
        sh ${S}/enos-bootslot env-set \
        enos_slot=A upgrade_available=0 bootcount=0 bootlimit=${ENOS_BOOTLIMIT} enos_rollback=0 \
        enos_good_A=1 enos_good_B=0

    # U-Boot boot script. No uboot.env is built: it would replace U-Boot's whole default
    # environment; boot.scr sets the EnOS variables' defaults itself on every boot.
    sed -e 's/setenv bootlimit 3/setenv bootlimit ${ENOS_BOOTLIMIT}/' ${S}/boot.cmd > ${B}/boot.cmd
    uboot-mkimage -A arm64 -O linux -T script -C none -n "EnOS Edge A/B boot" -d ${B}/boot.cmd ${B}/boot.scr
}

do_install() {
    install -D -m 0755 ${S}/enos-bootslot ${D}${sbindir}/enos-bootslot
    install -D -m 0755 ${S}/enos-trial-guard ${D}${sbindir}/enos-trial-guard
    install -D -m 0644 ${S}/enos-trial-guard.service ${D}${systemd_system_unitdir}/enos-trial-guard.service
    install -D -m 0644 ${S}/fw_env.config ${D}${sysconfdir}/fw_env.config
}

# For the image's boot partition (ENOS_BOOT_FILES in the distro): enos-bootslot/grub.cfg and
# enos-bootslot/grubenv on x86, enos-bootslot/boot.scr on U-Boot machines.
do_deploy() {
    install -d ${DEPLOYDIR}/enos-bootslot
    install -m 0644 ${S}/grub.cfg ${DEPLOYDIR}/enos-bootslot/grub.cfg
    install -m 0644 ${B}/grubenv ${DEPLOYDIR}/enos-bootslot/grubenv
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/enos-bootslot/boot.scr
}

addtask deploy after do_compile before do_build

PACKAGE_ARCH = "${MACHINE_ARCH}"

# enos-bootslot: the tool (POSIX sh, grep, sed, head, tr, mktemp, sync, flock), enough for GRUB
# machines.
# enos-bootslot-uboot: what U-Boot machines add (the env location and libubootenv's tools).
# The trial guard (enos-trial-guard.service) ends a trial boot that is not committed in time.
PACKAGES =+ "${PN}-uboot"
SYSTEMD_SERVICE:${PN} = "enos-trial-guard.service"
FILES:${PN} += "${systemd_system_unitdir}/enos-trial-guard.service"

FILES:${PN}-uboot += "${sysconfdir}/fw_env.config"
CONFFILES:${PN}-uboot = "${sysconfdir}/fw_env.config"
RDEPENDS:${PN}-uboot = "${PN} libubootenv-bin"
# flock(1): enos-bootslot serialises its read-modify-write cycles on /run/enos-bootslot/lock.
RDEPENDS:${PN} += "util-linux-flock"
