import { Metrics } from './metrics';
import { ZkSession } from './zk-session';

/** ZooKeeper connection metrics, one series per connect string, read live at scrape time. */
export function registerZkSessionMetrics(metrics: Metrics, sessions: Map<string, ZkSession>): void {
  const each = (value: (s: ZkSession) => number): { labels: { zk: string }; value: number }[] =>
    [...sessions.entries()].map(([zk, s]) => ({ labels: { zk }, value: value(s) }));
  metrics.gauge('smartstack_zk_connected', 'Whether the ZooKeeper session is connected (1) or not (0).', () => each((s) => (s.connected ? 1 : 0)));
  metrics.counter('smartstack_zk_disconnects_total', 'ZooKeeper connection losses (each followed by a reconnect).', () => each((s) => s.disconnects));
  metrics.counter('smartstack_zk_session_expirations_total', 'ZooKeeper sessions expired (each replaced at once).', () => each((s) => s.expirations));
  metrics.counter('smartstack_zk_sessions_total', 'ZooKeeper sessions established.', () => each((s) => s.generation));
  metrics.counter('smartstack_zk_auth_failures_total', 'Sessions the ensemble closed for refused credentials (each retried after a pause).', () => each((s) => s.authFailures));
  metrics.counter('smartstack_zk_protocol_errors_total', 'Replies the ZooKeeper client misread (each answered by a reconnect).', () => each((s) => s.protocolErrors));
}
