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

// A citation's "page" link opens its page view (/cite) in an overlay over the chat: the page with the cited
// lines highlighted, previous and next inside it. Esc, the close button or a click beside it closes it; the
// view, focused in its frame, asks for Esc with a message. Without this script the link opens a new tab.
(function () {
  let overlay = null;
  function close() {
    if (!overlay || overlay.hidden) return;
    overlay.hidden = true;
    overlay.querySelector('iframe').src = 'about:blank';
    if (overlay.opener) overlay.opener.focus();
  }
  function open(link) {
    if (!overlay) {
      overlay = document.createElement('div');
      overlay.id = 'rag-viewer';
      overlay.setAttribute('role', 'dialog');
      overlay.setAttribute('aria-modal', 'true');
      overlay.setAttribute('aria-label', 'the cited text where it stands');
      overlay.innerHTML = '<div class="rag-viewer-box"><button type="button" class="rag-viewer-close" ' +
        'aria-label="close (Esc)" title="close (Esc)">&times;</button><iframe title="the cited page"></iframe></div>';
      overlay.addEventListener('click', function (event) { if (event.target === overlay) close(); });
      overlay.querySelector('.rag-viewer-close').addEventListener('click', close);
      document.body.appendChild(overlay);
    }
    overlay.opener = link;
    overlay.hidden = false;
    const frame = overlay.querySelector('iframe');
    frame.src = link.href;
    frame.addEventListener('load', function () { frame.focus(); }, {once: true});
  }
  document.addEventListener('click', function (event) {
    const link = event.target.closest && event.target.closest('a.rag-view');
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();
    open(link);
  }, true);
  document.addEventListener('keydown', function (event) { if (event.key === 'Escape') close(); });
  window.addEventListener('message', function (event) {
    if (event.origin === location.origin && event.data === 'rag-view-close') close();
  });
})();
