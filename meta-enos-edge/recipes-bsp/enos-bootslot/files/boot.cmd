# EnOS Edge: A/B root slot selection with boot counting (U-Boot boot script, Raspberry Pi 4).
# Compiled to boot.scr (mkimage -T script) and placed on the boot partition (enos-esp).
#
# The same design as grub.cfg (docs/boot-slots.md), the same variables: enos_slot,
# upgrade_available, bootcount, bootlimit, enos_rollback, enos_good_A, enos_good_B.
# Every boot counts, committed or not: this script adds one to bootcount and saves the
# environment before the kernel starts; enos-ota resets it ("enos-bootslot commit") once the boot
# came up. A trial slot falls back after bootlimit boots; a committed one too, but only to a known
# good other slot. Both slots failed in turn (the fallback itself fails): stop at the prompt and say
# so, never alternate between two bad slots.
#
# The script counts, not U-Boot: CONFIG_BOOTCOUNT_LIMIT counts only while upgrade_available=1 and
# would count trial boots twice here; enos-bootcount.cfg switches it off.
# The environment lives in uboot.env on the boot partition (CONFIG_ENV_IS_IN_FAT; Linux:
# /boot/efi/uboot.env through fw_env.config).
#
# Layout contract: partition 2 = slot A (PARTLABEL enos-root-a), 3 = slot B (enos-root-b) of
# ${enos_bootdev} (default "mmc 0"; tests/uboot/run: "virtio 0"), kernel /boot/Image in each slot.
# The firmware's device tree is at ${fdt_addr}.
#
# Console lines start with "ENOS-UBOOT: " (tests/uboot/run reads them).

# Only the values enos-bootslot and SWUpdate write are taken; anything else is the default (the
# environment is a file Linux writes). A missing bootcount is 0.
if test -z "${enos_bootdev}"; then setenv enos_bootdev "mmc 0"; fi
if test "${enos_slot}" != "B"; then setenv enos_slot A; fi
if test "${bootlimit}" -lt 1 || test "${bootlimit}" -gt 9; then setenv bootlimit 3; fi
if test "${upgrade_available}" != "1"; then setenv upgrade_available 0; fi
if test "${enos_rollback}" != "1"; then setenv enos_rollback 0; fi
if test "${enos_good_A}" != "1"; then setenv enos_good_A 0; fi
if test "${enos_good_B}" != "1"; then setenv enos_good_B 0; fi
if test -z "${bootcount}"; then setenv bootcount 0; fi

# Helpers, set again on every boot: the copies saveenv stores are never what runs.
# enos_pair: enos_other and whether it is a known good fallback.
setenv enos_pair 'if test "${enos_slot}" = "A"; then setenv enos_other B; setenv enos_other_good ${enos_good_B}; else setenv enos_other A; setenv enos_other_good ${enos_good_A}; fi'
# enos_fall_back: enos_slot failed: mark it not good, switch to the other slot, tell Linux.
setenv enos_fall_back 'setenv enos_good_${enos_slot} 0; setenv enos_slot ${enos_other}; setenv upgrade_available 0; setenv bootcount 0; setenv enos_rollback 1; run enos_pair'
# enos_save: saveenv. Test only: tests/uboot/run sets enos_test_save (its QEMU U-Boot keeps the
# environment in flash, which QEMU fails to write; it saves uboot.env to the FAT partition instead).
setenv enos_save 'if test -n "${enos_test_save}"; then run enos_test_save; else saveenv; fi'
# enos_boot: boot enos_slot; returns only when its kernel cannot be loaded or started. The
# firmware's command line (console, cmdline.txt) is kept and the slot's root appended (the kernel
# takes the last root=); panic=10 reboots after a panic, so the counter advances.
setenv enos_boot 'if test "${enos_slot}" = "B"; then setenv enos_part 3; setenv enos_label enos-root-b; else setenv enos_part 2; setenv enos_label enos-root-a; fi; setenv bootargs "${enos_fw_bootargs} root=PARTLABEL=${enos_label} ro rootwait panic=10 enos.trial=${upgrade_available}"; echo "ENOS-UBOOT: booting slot=${enos_slot} part=${enos_part} trial=${upgrade_available} bootcount=${bootcount}/${bootlimit} rollback=${enos_rollback}"; if load ${enos_bootdev}:${enos_part} ${kernel_addr_r} /boot/Image; then booti ${kernel_addr_r} - ${fdt_addr}; fi'
run enos_pair

# bootcount += 1 (a table, as in grub.cfg: setexpr computes in hex; stops at 10)
if test "${bootcount}" = "0"; then setenv bootcount 1
elif test "${bootcount}" = "1"; then setenv bootcount 2
elif test "${bootcount}" = "2"; then setenv bootcount 3
elif test "${bootcount}" = "3"; then setenv bootcount 4
elif test "${bootcount}" = "4"; then setenv bootcount 5
elif test "${bootcount}" = "5"; then setenv bootcount 6
elif test "${bootcount}" = "6"; then setenv bootcount 7
elif test "${bootcount}" = "7"; then setenv bootcount 8
elif test "${bootcount}" = "8"; then setenv bootcount 9
else setenv bootcount 10
fi

setenv enos_stop 0
if test "${bootcount}" -gt "${bootlimit}"; then
	if test "${upgrade_available}" = "1"; then
		echo "ENOS-UBOOT: slot ${enos_slot} not committed after ${bootlimit} trial boots: falling back to slot ${enos_other}"
		run enos_fall_back
	elif test "${enos_other_good}" = "1"; then
		echo "ENOS-UBOOT: committed slot ${enos_slot} failed ${bootlimit} boots: falling back to good slot ${enos_other}"
		run enos_fall_back
	elif test "${enos_rollback}" = "1"; then
		# This slot is itself the fallback of a slot that failed: both are bad.
		echo "ENOS-UBOOT: slot ${enos_slot} failed ${bootlimit} boots after falling back from slot ${enos_other}: no good slot left, stopped"
		echo "ENOS-UBOOT: to try again: setenv bootcount 0; saveenv; reset (or reflash)"
		setenv enos_stop 1
	else
		# The other slot was never committed or is being written: nothing better to try.
		echo "ENOS-UBOOT: committed slot ${enos_slot} failed ${bootlimit} boots, slot ${enos_other} not good: booting ${enos_slot} again"
	fi
fi

if test "${enos_stop}" = "0"; then
	# Saved before the kernel starts: a panic or a hang still counts.
	run enos_save
	setenv enos_fw_bootargs
	fdt addr ${fdt_addr}
	fdt get value enos_fw_bootargs /chosen bootargs
	run enos_boot

	# The selected slot has no loadable kernel (half-written, or a broken update).
	if test "${upgrade_available}" = "1"; then
		echo "ENOS-UBOOT: no kernel in trial slot ${enos_slot}: falling back to slot ${enos_other}"
		run enos_fall_back
		run enos_save
	else
		# A committed slot is unreadable: try the other one once without touching the environment;
		# the health check sees "booted slot != selected slot" and will not commit it.
		echo "ENOS-UBOOT: no kernel in committed slot ${enos_slot}: trying slot ${enos_other} once"
		setenv enos_slot ${enos_other}
	fi
	run enos_boot
	echo "ENOS-UBOOT: no bootable slot (no kernel in slot A or B), stopped"
fi
