SUMMARY = "EnOS Edge signed A/B update bundle (.swu) of enos-edge-image"
DESCRIPTION = "A CMS-signed SWUpdate bundle that writes the root file system of enos-edge-image \
into the inactive root slot and arms a trial boot of it. The sw-description template is shared \
with scripts/make-bundle."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# meta-swupdate's "swupdate" class packs images that another recipe built (IMAGE_DEPENDS) into a
# .swu. ("swupdate-image" would turn this recipe into a second image recipe and build the root
# file system twice.)
inherit swupdate

SRC_URI = "file://sw-description"

ENOS_UPDATE_IMAGE = "enos-edge-image"
IMAGE_DEPENDS = "${ENOS_UPDATE_IMAGE}"
SWUPDATE_IMAGES = "${ENOS_UPDATE_IMAGE}"
# enos-edge-image must list ext4.zst in IMAGE_FSTYPES.
SWUPDATE_IMAGES_FSTYPES[enos-edge-image] = ".rootfs.ext4.zst"
SWUPDATE_IMAGES_NOAPPEND_MACHINE[enos-edge-image] = "0"

# Variables used by sw-description (the same names scripts/make-bundle takes).
ENOS_ROOTFS_FILE = "${ENOS_UPDATE_IMAGE}-${MACHINE}.rootfs.ext4.zst"
ENOS_VERSION ??= "${DISTRO_VERSION}"
ENOS_HW_BOARD ??= "enos-${MACHINE}"
ENOS_HW_REVISION ??= "1.0"

# Signing: CMS with the OEM's key pair (scripts/oem-signing-key creates one). The image trusts
# ENOS_SIGNING_CERT (swupdate_%.bbappend). Set both in the OEM's kas file or local.conf;
# tests/system/keys/ has a DEVELOPMENT ONLY pair for example builds.
ENOS_SIGNING_KEY ??= ""
ENOS_SIGNING_CERT ??= ""
SWUPDATE_SIGNING = "CMS"
SWUPDATE_CMS_KEY = "${ENOS_SIGNING_KEY}"
SWUPDATE_CMS_CERT = "${ENOS_SIGNING_CERT}"
# Optional: a file with the key's passphrase.
SWUPDATE_PASSWORD_FILE ??= ""

do_swuimage[file-checksums] += "${@'${ENOS_SIGNING_KEY}:True' if d.getVar('ENOS_SIGNING_KEY') else ''}"
