SUMMARY = "EnOS Edge: the whole gateway stack"
DESCRIPTION = "The EnOS Edge services, the A/B update agent (SWUpdate and the slot tool), the bootloader environment tools, the base system integration (data partition, persistent journal) and time keeping."
HOMEPAGE = "https://github.com/enos-edge/enos-edge"
BUGTRACKER = "https://github.com/enos-edge/enos-edge/issues"
SECTION = "base"
LICENSE = "MIT"

# The bootloader environment tools differ per machine (ENOS_BOOTENV_TOOLS).
PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

RDEPENDS:${PN} = "${ENOS_BOOTENV_TOOLS} \
                  ca-certificates \
                  e2fsprogs-e2fsck \
                  enos-bootslot \
                  enos-edge-base \
                  enos-edge-services \
                  enos-package-key \
                  swupdate \
                  tzdata \
                  volatile-binds"
