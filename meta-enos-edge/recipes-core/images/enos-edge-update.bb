# nooelint: oelint.file.underscores - a bundle recipe named like the image it packs (enos-edge-image.bb)
SUMMARY = "EnOS Edge signed A/B update bundle (.swu) of enos-edge-image"
DESCRIPTION = "A CMS-signed SWUpdate bundle that writes the root file system of enos-edge-image \
               into the inactive root slot and arms a trial boot of it. The sw-description \
               template is shared with scripts/make-bundle."
HOMEPAGE = "https://github.com/enos-edge/enos-edge"
BUGTRACKER = "https://github.com/enos-edge/enos-edge/issues"
SECTION = "base"
CVE_PRODUCT = "enos-edge"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "file://sw-description"

# meta-swupdate's "swupdate" class packs images that another recipe built (IMAGE_DEPENDS) into a
# .swu. ("swupdate-image" would turn this recipe into a second image recipe and build the root
# file system twice.)
inherit swupdate

IMAGE_DEPENDS = "enos-edge-image"
SWUPDATE_IMAGES = "enos-edge-image"
# enos-edge-image lists ext4.zst in IMAGE_FSTYPES.
SWUPDATE_IMAGES_FSTYPES[enos-edge-image] = ".rootfs.ext4.zst"
# nooelint: oelint.vars.mispell.unknown - meta-swupdate's variable (a flag per image)
SWUPDATE_IMAGES_NOAPPEND_MACHINE[enos-edge-image] = "0"

# Variables of the sw-description template (the same names scripts/make-bundle fills in).
# nooelint: oelint.vars.mispell.unknown - sw-description template variable
ENOS_ROOTFS_FILE = "enos-edge-image-${MACHINE}.rootfs.ext4.zst"
# nooelint: oelint.vars.mispell.unknown - sw-description template variable
ENOS_VERSION ??= "${DISTRO_VERSION}"
# nooelint: oelint.vars.mispell.unknown - sw-description template variable, as in swupdate_%.bbappend
ENOS_HW_BOARD ??= "enos-${MACHINE}"
# nooelint: oelint.vars.mispell.unknown - sw-description template variable, as in swupdate_%.bbappend
ENOS_HW_REVISION ??= "1.0"

# Signing: CMS with the OEM's key pair (scripts/oem-signing-key creates one); the image trusts
# ENOS_SIGNING_CERT (swupdate_%.bbappend). Set both in the OEM's kas file or local.conf;
# tests/system/keys/ has a DEVELOPMENT ONLY pair for example builds. An optional passphrase file
# goes into SWUPDATE_PASSWORD_FILE.
# nooelint: oelint.vars.mispell.unknown - meta-swupdate's variable
SWUPDATE_SIGNING = "CMS"
# nooelint: oelint.vars.mispell.unknown - meta-swupdate's variable
SWUPDATE_CMS_KEY = "${ENOS_SIGNING_KEY}"
# nooelint: oelint.vars.mispell.unknown - meta-swupdate's variable
SWUPDATE_CMS_CERT = "${ENOS_SIGNING_CERT}"

do_swuimage[file-checksums] += "${@'%s:True' % d.getVar('ENOS_SIGNING_KEY') if d.getVar('ENOS_SIGNING_KEY') else ''}"
