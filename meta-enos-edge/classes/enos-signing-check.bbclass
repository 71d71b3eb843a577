# EnOS Edge: refuse to build unless the update-signing pair and the package verification key are the
# OEM's own (or the build is a development build that says so, and is warned). Inherited globally
# by the enos-edge distro; the rules themselves are lib/enos/signing.py, which scripts/check-layer-static also runs against the kas files.

addhandler enos_signing_check_eventhandler
enos_signing_check_eventhandler[eventmask] = "bb.event.ConfigParsed"
python enos_signing_check_eventhandler() {
    import enos.signing
    topdir = e.data.getVar("ENOS_EDGE_TOPDIR")
    problem = enos.signing.problem(e.data.getVar, topdir) or enos.signing.package_key_problem(e.data.getVar, topdir)
    if problem:
        bb.fatal(problem)
    warning = enos.signing.dev_package_key_warning(e.data.getVar, topdir)
    if warning:
        bb.warn(warning)
}
