SUMMARY = "EnOS Edge: the whole gateway stack"
DESCRIPTION = "The EnOS Edge services, the A/B update agent (SWUpdate and \
the slot tool), the bootloader environment tools, the base system \
integration (data partition, persistent journal) and time keeping."
LICENSE = "MIT"

# The bootloader environment tools differ per machine (ENOS_BOOTENV_TOOLS).
PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

RDEPENDS:${PN} = " \
    enos-edge \
    enos-edge-base \
    enos-bootslot \
    swupdate \
    ${ENOS_BOOTENV_TOOLS} \
    volatile-binds \
    ca-certificates \
    tzdata \
    e2fsprogs-e2fsck \
"
