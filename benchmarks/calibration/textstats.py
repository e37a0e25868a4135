"""Category depth, text lengths (words), rating mean, move-free stats of a REGEN file."""
import gzip, json, sys
from statistics import mean
for path in sys.argv[1:]:
    depth, rev, crit, reason, expl, summ, rating, years = [], [], [], [], [], [], [], []
    for line in gzip.open(path, "rt"):
        d = json.loads(line)
        h = d["purchase_history"]
        for p in h:
            depth.append(len(p["item"]["category"].split(" - ")))
            rev.append(len(p["review"]["text"].split()))
            rating.append(p["review"]["rating"])
            if p["critique"]:
                crit.append(len(str(p["critique"]).split()))
        years.append((h[-1]["review"]["unix_time"] - h[0]["review"]["unix_time"]) / 3.156e7)
        reason.append(len(d["last_purchase"]["reason"].split()))
        expl.append(len(d["last_purchase"]["explanation"].split()))
        summ.append(len(d["user"]["long_summary"].split()))
    print(path, f"depth {mean(depth):.2f} review_words {mean(rev):.1f} critique_words {mean(crit):.1f} "
          f"reason {mean(reason):.1f} explanation {mean(expl):.1f} long_summary {mean(summ):.1f} "
          f"rating {mean(rating):.2f} span_years {mean(years):.2f}")
