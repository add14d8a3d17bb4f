"""Sections of the GPU check's results.md, from the stage logs (benchmarks/gpu_check.sh):

    summarize.py failures LOGS   failing tests by name (pytest's JUnit XML, GoogleTest's and the examples' logs)
    summarize.py driver LOG      the kernel driver's and compute-sanitizer's verdicts
    summarize.py benchmarks LOGS the benchmark tables
"""
import glob
import os
import re
import sys
import xml.etree.ElementTree as ElementTree


def failures(logs):
    lines = ["## Failing tests", ""]
    names = []
    xml = os.path.join(logs, "pytest.xml")
    if os.path.exists(xml):
        root = ElementTree.parse(xml).getroot()
        for case in root.iter("testcase"):
            for kind in ("failure", "error"):
                element = case.find(kind)
                if element is not None:
                    message = (element.get("message") or "").splitlines()[0][:160] if element.get("message") else ""
                    names.append(f"- pytest {case.get('classname')}::{case.get('name')} ({kind}): {message}")
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
        lines.append("pytest (CUDA tests): {tests} run, {failures} failed, {errors} errors, {skipped} skipped".format(
            **counts))
    else:
        collected = _last_match(os.path.join(logs, "pytest.log"), r"(\d+)(?:/\d+)? tests? collected|(\d+) tests? selected")
        lines.append(f"pytest: no JUnit report (dry run or cut off); {collected or 'no'} CUDA tests collected")
    gtest = os.path.join(logs, "gtest.log")
    if os.path.exists(gtest):
        with open(gtest) as f:
            text = f.read()
        names += [f"- gtest {m}" for m in sorted(set(re.findall(r"\[  FAILED  \] (\S+)", text)))]
        listed = len(re.findall(r"^  \S+_CUDA", text, re.M))
        if listed:
            lines.append(f"GoogleTest: {listed} CUDA cases listed (dry run)")
    examples = os.path.join(logs, "examples.log")
    if os.path.exists(examples):
        with open(examples) as f:
            lines.append("C++ example and consumer: " + " / ".join(
                l.strip() for l in f if l.startswith("tiny_generated_net")) or "no output")
    lines += [""] + (names or ["None."])
    return "\n".join(lines)


def _last_match(path, pattern):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        found = [next(g for g in m.groups() if g) for m in re.finditer(pattern, f.read())]
    return found[-1] if found else None


def driver(log):
    lines = ["## Kernel driver and compute-sanitizer", ""]
    if not os.path.exists(log):
        return "\n".join(lines + ["No log."])
    with open(log) as f:
        for line in f:
            if line.startswith(("$ ", "ok ", "MISMATCH", "ERROR", "skipped", "case ")) or "ERROR SUMMARY" in line \
                    or "RACECHECK SUMMARY" in line or re.match(r"\d+ cases", line):
                lines.append("    " + line.rstrip())
    return "\n".join(lines)


def benchmarks(logs):
    lines = ["## Benchmarks (quick mode; ratios to the first variant of each row, same run)", ""]
    for path in sorted(glob.glob(os.path.join(logs, "bench_*.md"))):
        lines += [f"### {os.path.basename(path)[len('bench_'):-len('.md')]}", ""]
        with open(path) as f:
            lines.append(f.read().strip())
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, where = sys.argv[1], sys.argv[2]
    print({"failures": failures, "driver": driver, "benchmarks": benchmarks}[kind](where))
