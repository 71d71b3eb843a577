# EnOS Edge: refuse to build unless the update-signing pair is the OEM's own (or the build is a
# development build that says so). Inherited globally by the enos-edge distro; the rule itself is
# lib/enos/signing.py, which scripts/check-layer-static also runs against the kas files.

addhandler enos_signing_check_eventhandler
enos_signing_check_eventhandler[eventmask] = "bb.event.ConfigParsed"
python enos_signing_check_eventhandler() {
    import enos.signing
    problem = enos.signing.problem(e.data.getVar, e.data.getVar("ENOS_EDGE_TOPDIR"))
    if problem:
        bb.fatal(problem)
}
