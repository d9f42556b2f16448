"""Scrapes `duplex serve --metrics` like Prometheus would and parses it with the Prometheus
project's own Python client parser: prometheus_scrape_check.py URL (http://127.0.0.1:PORT/metrics).
Checks the status and the exposition format's Content-Type, parses the whole body with
prometheus_client.parser.text_string_to_metric_families (a malformed line raises), and prints
each family as `family NAME TYPE` and each sample as `sample NAME{LABEL="VALUE",...} VALUE`
(labels sorted by name), then `RESULT: OK`. Exits 1 with `FAILED: ...` otherwise."""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def fail(what):
    print(f"FAILED: {what}")
    sys.exit(1)


with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
    status = response.status
    content_type = response.headers.get("Content-Type", "")
    body = response.read().decode("utf-8")
if status != 200:
    fail(f"status {status}")
if not content_type.startswith("text/plain") or "version=0.0.4" not in content_type:
    fail(f"Content-Type {content_type!r} is not the text exposition format 0.0.4")
try:
    families = list(text_string_to_metric_families(body))
except Exception as error:  # the parser raises ValueError (and others) on malformed text
    fail(f"the exposition does not parse: {error!r}\n{body}")
if not families:
    fail(f"no metric family in {body!r}")
for family in families:
    print(f"family {family.name} {family.type}")
    for sample in family.samples:
        labels = ",".join(f'{name}="{value}"' for name, value in sorted(sample.labels.items()))
        print(f"sample {sample.name}{{{labels}}} {sample.value!r}")
print("RESULT: OK")
