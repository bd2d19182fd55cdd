// The index's filter: by the newest revision's verdict and by text (subject, author, slug, Message-IDs).
// The only script of the site; it reads data-* attributes the server escaped and writes textContent only.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const text = document.getElementById("filter-text");
  const verdict = document.getElementById("filter-verdict");
  const count = document.getElementById("filter-count");
  const groups = Array.from(document.querySelectorAll("tbody.series"));
  const apply = () => {
    const q = text.value.trim().toLowerCase();
    const v = verdict.value;
    let shown = 0;
    for (const g of groups) {
      const ok = (!q || g.dataset.text.includes(q)) && (!v || g.dataset.verdict === v);
      g.hidden = !ok;
      if (ok) shown += 1;
    }
    count.textContent = `${shown} of ${groups.length} series`;
  };
  text.addEventListener("input", apply);
  verdict.addEventListener("change", apply);
  document.getElementById("filter").addEventListener("submit", (e) => e.preventDefault());
  apply();
});
