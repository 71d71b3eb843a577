SUMMARY = "EnOS Edge gateway image: the complete A/B system"
DESCRIPTION = "Read-only root file system with the EnOS Edge stack, written into an A/B GPT disk image (boot, rootfs A, rootfs B, data). The update bundle enos-edge-update carries the ext4 of this image."
HOMEPAGE = "https://github.com/enos-edge/enos-edge"
BUGTRACKER = "https://github.com/enos-edge/enos-edge/issues"
SECTION = "image"
CVE_PRODUCT = "enos-edge"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
# Optional features an OEM or the dev overlay may add with
# EXTRA_IMAGE_FEATURES: "ssh-server-openssh" (remote maintenance),
# "allow-empty-password allow-root-login empty-root-password" (lab only).

# kernel-image: each slot boots its own kernel from its /boot.
IMAGE_INSTALL = "packagegroup-core-boot \
                 packagegroup-enos-edge \
                 kernel-image \
                 ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_LINGUAS = ""

# Size budget: the rootfs must fit its 1 GiB slot with room for later
# releases (slot sizes never change in the field). The build fails beyond
# 512 MiB (KiB here); see docs/layer.md.
IMAGE_ROOTFS_MAXSIZE = "524288"

# The disk image (wic, with a bmap for bmaptool) and the ext4 that
# enos-edge-update puts into the .swu. Set here, not in the distro, because
# the machine configurations set their own defaults.
IMAGE_FSTYPES = "wic.zst wic.bmap ext4.zst"
# runqemu cannot boot a compressed disk image.
IMAGE_FSTYPES:append:qemuall = " wic"
WKS_FILE = "${ENOS_WKS_FILE}"
# Only what the .wks needs (vfat boot partition, ext4 slots and data): no
# syslinux, systemd-boot, ISO, btrfs, squashfs or erofs tools in the build.
WKS_FILE_DEPENDS = "wic-native bmaptool-native e2fsprogs-native dosfstools-native mtools-native"
# What goes onto the boot partition (distro: ENOS_BOOT_FILES per machine).
IMAGE_BOOT_FILES = "${ENOS_BOOT_FILES}"
# nooelint: oelint.vars.mispell.unknown - the wic image task of image_types_wic
do_image_wic[depends] += "${ENOS_BOOT_DEPLOY_DEPENDS}"
