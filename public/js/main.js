// The page's shell: who is logged in, the header, and hash routing (#/jobs, #/jobs/12, #/new, #/groups,
// #/schedules, #/runners) so the server serves one file. Each view is `render(container, context) → dispose`; to
// embed one in another app, import it with an api from createApi() and call it the same way.
import { createApi } from './api.js';
import { h, replace } from './dom.js';
import { renderGroupsPage } from './groups-page.js';
import { renderJobForm } from './job-form.js';
import { renderJobList } from './jobs-list.js';
import { renderJobPage } from './job-page.js';
import { renderLogin } from './login.js';
import { renderRunnersPage } from './runners-page.js';
import { renderSchedulesPage } from './schedules-page.js';

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

let me = null;
let dispose = () => {};
/** Where to go back to after logging in. */
let wanted = '#/jobs';

const api = createApi({ onUnauthorized: () => showLogin() });

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function mount(render, context) {
  dispose();
  dispose = render(view, { api, me, navigate, ...context }) ?? (() => {});
}

function showHeader() {
  nav.hidden = !me;
  who.hidden = !me;
  if (!me) return;
  document.getElementById('who-name').textContent = me.username;
  document.getElementById('who-admin').hidden = !me.isAdmin;
  // Admins' views: the API answers 403 to anyone else.
  document.getElementById('nav-groups').hidden = !me.isAdmin;
  document.getElementById('nav-schedules').hidden = !me.isAdmin;
  document.getElementById('nav-runners').hidden = !me.isAdmin;
}

function showLogin() {
  if (location.hash && location.hash !== '#/login') wanted = location.hash;
  // Several requests may answer 401 at once: one login form is enough.
  if (me === null && view.querySelector('form.login')) return;
  me = null;
  showHeader();
  mount(renderLogin, {
    onLogin: (user) => {
      me = user;
      showHeader();
      navigate(wanted === '#/login' ? '#/jobs' : wanted);
    },
  });
}

/** An address the page has no view for: said so, rather than quietly showing another view. */
function renderNotFound(container, { path }) {
  replace(
    container,
    h('h1', {}, 'Page not found'),
    h('p', { class: 'muted' }, `There is no page at #${path}.`),
    h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')),
  );
}

function route() {
  if (!me) return showLogin();
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(search);
  const parts = path.split('/').filter(Boolean);
  for (const link of nav.querySelectorAll('a')) {
    link.classList.toggle('active', link.dataset.nav === (parts[0] || 'jobs'));
  }
  // One word (or the jobs' id) per view: anything longer is an address the page does not know.
  const page = parts.length <= 1 ? (parts[0] ?? 'jobs') : parts[0] === 'jobs' && parts.length === 2 ? 'jobs/:id' : '';
  if (page === 'jobs/:id') {
    mount(renderJobPage, { id: parts[1] });
  } else if (page === 'new') {
    mount(renderJobForm, { query });
  } else if (page === 'groups') {
    // Not hidden from non-admins by the router: the API's 403 says it, as text.
    mount(renderGroupsPage, {});
  } else if (page === 'schedules') {
    mount(renderSchedulesPage, {});
  } else if (page === 'runners') {
    mount(renderRunnersPage, {});
  } else if (page === 'jobs') {
    mount(renderJobList, { query });
  } else if (page === 'login') {
    // Logged in already (a bookmark, the back button): the list is where a login leads.
    return navigate('#/jobs');
  } else {
    mount(renderNotFound, { path });
  }
  view.focus({ preventScroll: true });
}

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await api.logout();
  } catch {
    // Logged out already; the login form is what follows either way.
  }
  wanted = '#/jobs';
  me = null;
  history.replaceState(null, '', '#/login');
  showLogin();
});

window.addEventListener('hashchange', route);

api.me().then(
  (user) => {
    me = user;
    showHeader();
    route();
  },
  (err) => {
    // 401 has shown the login form already.
    if (err.status !== 401) view.textContent = `The server cannot be reached: ${err.message}`;
  },
);
