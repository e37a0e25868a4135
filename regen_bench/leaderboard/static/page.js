document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    if (th.hasAttribute("data-nosort")) return;  // a link or a command: nothing to order by
    th.setAttribute("tabindex", "0");
    th.setAttribute("role", "button");
    function sort() {
      var desc = th.getAttribute("aria-sort") !== "descending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
        var text = row.cells[col].textContent.trim().replace(/,/g, "");
        var num = parseFloat(text);
        return {row: row, i: i, text: text, num: /^-?[0-9.]+$/.test(text) ? num : null};
      });
      rows.sort(function (a, b) {
        if (a.num === null && b.num !== null) return 1;
        if (b.num === null && a.num !== null) return -1;
        var c = a.num !== null ? a.num - b.num : a.text.localeCompare(b.text);
        return (desc ? -c : c) || a.i - b.i;
      });
      rows.forEach(function (r) { body.appendChild(r.row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });
});
