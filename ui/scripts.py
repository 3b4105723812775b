"""The page's own JavaScript, run once when the sources panel loads (Gradio's `js_on_load`,
where `element` is the panel)."""

from __future__ import annotations

NARROW = "(max-width: 767px)"  # as in style.css: the sources panel is below the chat

# Opening "Show in document" scrolls the surrounding text to the passage. (`toggle` does not
# bubble, hence the capture listener on the panel.)
SCROLL_TO_PASSAGE = """
element.addEventListener('toggle', (event) => {
  const box = event.target.querySelector('.qa-context-text');
  const here = box && box.querySelector('.qa-here');
  if (event.target.open && here) box.scrollTop = Math.max(0, here.offsetTop - 24);
}, true);
"""

# On a narrow screen the chat grows with its messages and the page scrolls instead; when an
# answer arrives, the page is scrolled to put its question at the top, the answer below it.
SHOW_QUESTION = """
(function watch() {
  const chat = document.querySelector('#qa-chat');
  if (!chat) return setTimeout(watch, 200);
  const narrow = window.matchMedia('__NARROW__');
  let answers = chat.querySelectorAll('[data-testid=bot]').length;
  new MutationObserver(() => {
    const now = chat.querySelectorAll('[data-testid=bot]').length;
    const questions = chat.querySelectorAll('[data-testid=user]');
    if (now > answers && narrow.matches && questions.length) {
      questions[questions.length - 1].scrollIntoView({block: 'start'});
    }
    answers = now;
  }).observe(chat, {childList: true, subtree: true});
})();
""".replace("__NARROW__", NARROW)

ON_LOAD = SCROLL_TO_PASSAGE + SHOW_QUESTION
