# EnOS Edge: A/B root slot selection with boot counting (U-Boot boot script, Raspberry Pi 4).
# Compiled to boot.scr (mkimage -T script) and placed on the boot partition (enos-esp).
#
# U-Boot must be built with the layer's enos-bootcount.cfg fragment: CONFIG_BOOTCOUNT_LIMIT and
# CONFIG_BOOTCOUNT_ENV, so U-Boot itself adds one to "bootcount" at every boot while
# upgrade_available=1, and runs "altbootcmd" instead of "bootcmd" once bootcount > bootlimit.
# The environment lives in uboot.env on the boot partition (Linux: /boot/efi/uboot.env through
# fw_env.config). Variables: enos_slot, upgrade_available, bootcount, bootlimit, enos_rollback
# (docs/boot-slots.md); the same names as the GRUB side.
#
# Layout contract: mmc 0, partition 2 = slot A (PARTLABEL enos-root-a), 3 = slot B (enos-root-b),
# kernel /boot/Image in each slot. The firmware's device tree is at ${fdt_addr}.

# First boot (or an environment reset): install the fallback command and the defaults, once.
if test "${enos_env_rev}" != "1"; then
	setenv altbootcmd 'echo "ENOS-UBOOT: slot ${enos_slot} not committed after ${bootlimit} trial boots: falling back"; if test "${enos_slot}" = "B"; then setenv enos_slot A; else setenv enos_slot B; fi; setenv upgrade_available 0; setenv bootcount 0; setenv enos_rollback 1; saveenv; run bootcmd'
	if test -z "${bootlimit}"; then setenv bootlimit 3; fi
	if test -z "${enos_slot}"; then setenv enos_slot A; fi
	if test -z "${upgrade_available}"; then setenv upgrade_available 0; fi
	setenv enos_env_rev 1
	saveenv
fi

if test "${enos_slot}" = "B"; then
	setenv enos_part 3
	setenv enos_label enos-root-b
else
	setenv enos_part 2
	setenv enos_label enos-root-a
fi

# Keep the firmware's command line (console, cmdline.txt) and append the slot's root: the kernel
# takes the last root= it is given. panic=10 reboots after a panic so the counter advances.
fdt addr ${fdt_addr}
fdt get value enos_fw_bootargs /chosen bootargs
setenv bootargs "${enos_fw_bootargs} root=PARTLABEL=${enos_label} ro rootwait panic=10"
echo "ENOS-UBOOT: booting slot=${enos_slot} part=${enos_part} trial=${upgrade_available} bootcount=${bootcount}/${bootlimit}"

if load mmc 0:${enos_part} ${kernel_addr_r} /boot/Image; then
	booti ${kernel_addr_r} - ${fdt_addr}
fi

# No loadable kernel in the selected slot.
if test "${upgrade_available}" = "1"; then
	echo "ENOS-UBOOT: no kernel in trial slot ${enos_slot}"
	run altbootcmd
fi
echo "ENOS-UBOOT: no kernel in committed slot ${enos_slot}: trying the other slot once"
if test "${enos_part}" = "2"; then setenv enos_part 3; setenv enos_label enos-root-b; else setenv enos_part 2; setenv enos_label enos-root-a; fi
setenv bootargs "${enos_fw_bootargs} root=PARTLABEL=${enos_label} ro rootwait panic=10"
if load mmc 0:${enos_part} ${kernel_addr_r} /boot/Image; then
	booti ${kernel_addr_r} - ${fdt_addr}
fi
echo "ENOS-UBOOT: no bootable slot"
