// Clicking a marker scrolls its source into view inside the panel and flashes it; a marker of an
// earlier answer opens that answer's folded sources first. Delegated, so it survives re-renders.
document.addEventListener('click', function (event) {
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  if (!link) return;
  const target = document.getElementById(link.getAttribute('href').slice(1));
  if (!target) return;
  event.preventDefault();
  event.stopPropagation();
  for (let d = target.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true;
  target.scrollIntoView({behavior: 'smooth', block: 'nearest'});
  document.querySelectorAll('.rag-flash').forEach(function (e) { e.classList.remove('rag-flash'); });
  target.classList.add('rag-flash');
}, true);
