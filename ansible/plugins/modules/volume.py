#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 zkluks contributors
# MIT License (see LICENSE in the zkluks repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: volume
short_description: Manage a LUKS2 volume's zkluks state (Zymkey keyslot, recovery key, escrow, boot files)
version_added: "0.1.0"
description:
  - Brings a LUKS2 volume to the zkluks state asked for by running the C(zkluks) command on the
    managed host, one command per difference, each with C(--json).
  - C(changed) comes from zkluks's own JSON (C(changed), or the steps of the plan in check mode);
    a volume already in the asked state is left alone, so the module is idempotent.
  - In check mode every changing command runs with C(--dry-run), which changes nothing.
  - zkluks's safety rules stay in force; a refused change (for example removing the last way in
    without the Zymkey) fails the task with zkluks's message and leaves the volume as it was.
  - Follows the conventions of C(community.crypto.luks_device) (C(device), C(state), key material
    passed on stdin and never logged).
options:
  device:
    description: The LUKS2 volume, a block device such as C(/dev/mmcblk0p2) or an image file.
    type: str
    required: true
  state:
    description:
      - C(enrolled) - a Zymkey-sealed key in its own keyslot with its C(zkluks-zymkey) token.
      - C(absent) - the boot files (when C(boot_files) is not C(ignore)) and then the Zymkey keyslot removed.
    type: str
    choices: [enrolled, absent]
    default: enrolled
  recovery_key:
    description:
      - C(present) - the volume has a zkluks recovery key (made when missing; needs C(recovery_key_file)).
      - C(absent) - no zkluks recovery key (zkluks refuses when it would be the last way in without the Zymkey).
      - C(ignore) - leave recovery keys as they are.
    type: str
    choices: [present, absent, ignore]
    default: present
  escrow_recipient:
    description:
      - An age recipient (C(age1...)) the recovery key is kept encrypted to, in its LUKS2 token.
      - When the recovery key is escrowed to another recipient (or not at all) a new recovery key replaces it.
    type: str
  recovery_key_file:
    description:
      - Where, on the managed host, a new recovery key is written (created 0600, never overwritten).
      - Required whenever a recovery key has to be made; the key is never returned or logged.
    type: path
  boot_files:
    description:
      - C(present) - C(zkluks initramfs install) (keyscript, hook, crypttab line, rebuilt initramfs).
      - C(absent) - C(zkluks initramfs remove) (crypttab back as it was).
      - C(ignore) - leave the boot files as they are.
    type: str
    choices: [present, absent, ignore]
    default: ignore
  crypttab_name:
    description: crypttab name for a new line (zkluks's default is C(cryptroot)).
    type: str
  zkunlockifs:
    description: Path of Zymbit's zkunlockifs, when not in Zymbit's usual places.
    type: path
  update_initramfs:
    description: Rebuild the initramfs after changing the boot files.
    type: bool
    default: true
  unlock_key:
    description: An existing passphrase or key of the volume, to authorize enrolling. Passed on stdin.
    type: str
  unlock_key_file:
    description: A file on the managed host holding an existing passphrase or key of the volume.
    type: path
  root:
    description: The system tree zkluks operates on (C(--root)).
    type: path
    default: /
  backend:
    description: Zymkey backend; C(sim) is zkluks's software Zymkey.
    type: str
    choices: [zymbit, sim]
  sim_state:
    description: State directory of the simulator (C(--sim-state)).
    type: path
  executable:
    description: The zkluks command on the managed host.
    type: path
    default: zkluks
notes:
  - Supports check mode and diff mode.
  - Needs zkluks 0.1.0 or newer on the managed host (the C(zkluks.zkluks.zkluks) role installs it).
seealso:
  - module: community.crypto.luks_device
author:
  - zkluks contributors
"""

EXAMPLES = r"""
- name: Enroll the root volume with the Zymkey, recovery key escrowed to the admins' age key
  zkluks.zkluks.volume:
    device: /dev/mmcblk0p2
    unlock_key: "{{ luks_passphrase }}"
    recovery_key_file: /root/zkluks-recovery.txt
    escrow_recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    boot_files: present

- name: Take zkluks off a volume (boot files first, then the Zymkey keyslot)
  zkluks.zkluks.volume:
    device: /dev/mmcblk0p2
    state: absent
    recovery_key: ignore
    boot_files: absent
"""

RETURN = r"""
device:
  description: The volume.
  returned: always
  type: str
  sample: /dev/mmcblk0p2
state:
  description: The volume's zkluks state after the task (predicted from the plans in check mode).
  returned: always
  type: dict
  contains:
    enrolled:
      description: Whether a Zymkey keyslot with its token is present.
      type: bool
    zymkey_slot:
      description: The Zymkey keyslot, or null.
      type: int
    recovery_slot:
      description: The recovery keyslot, or null.
      type: int
    escrow_recipient:
      description: The age recipient the recovery key is escrowed to, or null.
      type: str
    boot_files:
      description: Whether the zkluks boot files and crypttab line are installed (null when not asked about).
      type: bool
  sample: {enrolled: true, zymkey_slot: 1, recovery_slot: 2, escrow_recipient: null, boot_files: true}
commands:
  description: The zkluks commands run (without key material), each with what zkluks answered.
  returned: always
  type: list
  elements: dict
  sample: [{command: "zkluks enroll /dev/mmcblk0p2 --unlock-key-file - --json", changed: true}]
msg:
  description: On failure, zkluks's own message and hint.
  returned: failed
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule


class Zkluks(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.commands = []

    def _global(self):
        args = ["--root", self.p["root"]]
        if self.p["backend"]:
            args += ["--backend", self.p["backend"]]
        if self.p["sim_state"]:
            args += ["--sim-state", self.p["sim_state"]]
        return args

    def run(self, args, changing=False, data=None, allow_fail=False):
        """Runs zkluks ARGS --json; returns (exit code, parsed JSON). A failure ends the task with
        zkluks's message unless allow_fail."""
        cmd = [self.p["executable"]] + args + ["--json"] + self._global()
        dry = changing and self.module.check_mode
        if dry:
            cmd.append("--dry-run")
        rc, out, err = self.module.run_command(
            cmd, data=data, binary_data=True, environ_update={"NO_COLOR": "1"}
        )
        try:
            result = json.loads(out) if out.strip() else None
        except ValueError:
            result = None
        if rc != 0 and not allow_fail:
            error = (result or {}).get("error") if isinstance(result, dict) else None
            if error:
                msg = error.get("message", "")
                if error.get("hint"):
                    msg += " (hint: %s)" % error["hint"]
            else:
                # Commands that make keys are never echoed: only the last stderr line, which
                # zkluks keeps to its message.
                lines = [l for l in err.splitlines() if l.strip()]
                msg = lines[-1] if lines else "zkluks exited %d" % rc
            self.commands.append({"command": " ".join(cmd), "rc": rc})
            self.module.fail_json(
                msg=msg, rc=rc, commands=self.commands, device=self.p["device"], error=error
            )
        if changing:
            changed = bool(result and result.get("changed"))
            if dry and result and isinstance(result.get("plan"), dict):
                steps = [s for s in result["plan"].get("steps", []) if _real_step(s)]
                changed = len(steps) > 0
            self.commands.append({"command": " ".join(cmd), "rc": rc, "changed": changed})
            return rc, result, changed
        return rc, result, False

    def unlock_args(self):
        if self.p["unlock_key"] is not None:
            return ["--unlock-key-file", "-"], self.p["unlock_key"].encode("utf-8")
        if self.p["unlock_key_file"]:
            return ["--unlock-key-file", self.p["unlock_key_file"]], None
        return [], None

    def facts(self):
        """The volume's keyslots (zkluks list) and its recovery escrow recipient."""
        rc, listing, _ = self.run(["list", self.p["device"]])
        zymkey = [s["slot"] for s in listing.get("slots", []) if s.get("kind") == "zymkey"]
        recovery = [s for s in listing.get("slots", []) if s.get("kind") == "recovery"]
        escrow = None
        if recovery:
            token = [t["id"] for t in recovery[0].get("tokens", []) if t.get("type") == "zkluks-recovery"]
            if token:
                escrow = self.escrow_of(token[0])
        return {
            "enrolled": len(zymkey) > 0,
            "zymkey_slot": zymkey[0] if zymkey else None,
            "recovery_slot": recovery[0]["slot"] if recovery else None,
            "escrow_recipient": escrow,
        }

    def escrow_of(self, token_id):
        device = self.p["device"]
        rc, out, _ = self.module.run_command(
            ["cryptsetup", "token", "export", "--token-id", str(token_id), device]
        )
        if rc != 0:
            return None
        try:
            escrow = json.loads(out).get("escrow") or {}
        except ValueError:
            return None
        return escrow.get("recipient")

    def boot_args(self, action):
        args = ["initramfs", action, self.p["device"]]
        if self.p["zkunlockifs"]:
            args += ["--zkunlockifs", self.p["zkunlockifs"]]
        if action == "install" and self.p["crypttab_name"]:
            args += ["--name", self.p["crypttab_name"]]
        if not self.p["update_initramfs"]:
            args.append("--no-update")
        return args

    def boot_pending(self, action):
        """Whether `zkluks initramfs ACTION` would change a file or crypttab (its dry-run plan)."""
        rc, plan, _ = self.run(self.boot_args(action) + ["--dry-run"], allow_fail=(action == "remove"))
        if rc != 0:
            return False
        return len([s for s in plan.get("plan", {}).get("steps", []) if _real_step(s)]) > 0

    def boot(self, action):
        if not self.boot_pending(action):
            return False
        _, _, changed = self.run(self.boot_args(action), changing=True)
        return changed


def _real_step(step):
    """A plan step that changes the volume or a file (not a check or an image rebuild by itself)."""
    return step.get("kind") not in ("update-initramfs", "verify-images")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type="str", required=True),
            state=dict(type="str", default="enrolled", choices=["enrolled", "absent"]),
            recovery_key=dict(type="str", default="present", choices=["present", "absent", "ignore"]),
            escrow_recipient=dict(type="str"),
            recovery_key_file=dict(type="path"),
            boot_files=dict(type="str", default="ignore", choices=["present", "absent", "ignore"]),
            crypttab_name=dict(type="str"),
            zkunlockifs=dict(type="path"),
            update_initramfs=dict(type="bool", default=True),
            unlock_key=dict(type="str", no_log=True),
            unlock_key_file=dict(type="path"),
            root=dict(type="path", default="/"),
            backend=dict(type="str", choices=["zymbit", "sim"]),
            sim_state=dict(type="path"),
            executable=dict(type="path", default="zkluks"),
        ),
        mutually_exclusive=[("unlock_key", "unlock_key_file")],
        supports_check_mode=True,
    )
    p = module.params
    zk = Zkluks(module)
    device = p["device"]
    before = zk.facts()
    after = dict(before)
    changed = False

    def recovery_flags():
        flags = []
        if p["escrow_recipient"]:
            flags += ["--escrow", p["escrow_recipient"]]
        if p["recovery_key_file"]:
            flags += ["--recovery-key-file", p["recovery_key_file"]]
        return flags

    def need_recovery_file():
        if not p["recovery_key_file"]:
            module.fail_json(
                msg="A recovery key must be made for '%s': set recovery_key_file to the path on the host "
                "it is written to (0600); the key is never returned" % device,
                device=device,
                commands=zk.commands,
            )

    if p["state"] == "absent" and p["boot_files"] != "ignore":
        # The boot files go first, so no boot ever looks for a keyslot that is gone.
        if zk.boot("remove"):
            changed = True
        after["boot_files"] = False

    enrolled = before["enrolled"]
    has_recovery = before["recovery_slot"] is not None
    escrow = before["escrow_recipient"]
    if p["state"] == "enrolled" and not enrolled:
        args = ["enroll", device]
        unlock, data = zk.unlock_args()
        args += unlock
        makes_recovery = p["recovery_key"] == "present" and not has_recovery
        if makes_recovery:
            need_recovery_file()
            args += recovery_flags()
        else:
            args.append("--no-recovery-key")
        _, result, did = zk.run(args, changing=True, data=data)
        changed = changed or did
        enrolled = True
        if makes_recovery:
            has_recovery = True
            escrow = p["escrow_recipient"]
    elif p["state"] == "absent" and enrolled:
        _, _, did = zk.run(["remove", device], changing=True)
        changed = changed or did
        enrolled = False

    if p["recovery_key"] == "present":
        wrong_escrow = bool(p["escrow_recipient"]) and escrow != p["escrow_recipient"]
        if not has_recovery or wrong_escrow:
            need_recovery_file()
            args = ["recovery", "add", device] + recovery_flags()
            if has_recovery:
                args.append("--force")
            data = None
            if not enrolled:
                # Without a Zymkey keyslot, an existing passphrase authorizes the new recovery key.
                unlock, data = zk.unlock_args()
                args += unlock
            _, _, did = zk.run(args, changing=True, data=data)
            changed = changed or did
            has_recovery = True
            escrow = p["escrow_recipient"]
    elif p["recovery_key"] == "absent" and has_recovery:
        _, _, did = zk.run(["recovery", "remove", device, "--yes"], changing=True)
        changed = changed or did
        has_recovery = False
        escrow = None

    if p["state"] == "enrolled" and p["boot_files"] != "ignore":
        action = "install" if p["boot_files"] == "present" else "remove"
        if module.check_mode and action == "install" and not before["enrolled"]:
            # `initramfs install` wants the Zymkey token the (dry-run) enroll did not write.
            changed = True
        elif zk.boot(action):
            changed = True
        after["boot_files"] = p["boot_files"] == "present"
    after.update(enrolled=enrolled, escrow_recipient=escrow)
    if not enrolled:
        after["zymkey_slot"] = None
    if not has_recovery:
        after["recovery_slot"] = None
    after.setdefault("boot_files", None)
    before.setdefault("boot_files", None)

    if changed and not module.check_mode:
        final = zk.facts()
        final["boot_files"] = after["boot_files"]
        after = final

    result = dict(changed=changed, device=device, state=after, commands=zk.commands)
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
