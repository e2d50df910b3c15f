import { billingCodeOf } from '../../lib/providers/billing-errors.js';

describe('billing refusals', () => {
  it("recognises OpenAI's insufficient_quota, as a body, its text, or the SDK's error.error", () => {
    const body = {
      error: { message: 'You exceeded your current quota', type: 'insufficient_quota', param: null, code: 'insufficient_quota' },
    };
    expect(billingCodeOf(body)).toBe('insufficient_quota');
    expect(billingCodeOf(JSON.stringify(body))).toBe('insufficient_quota');
    expect(billingCodeOf(body.error)).toBe('insufficient_quota');
  });

  it("recognises Anthropic's billing_error", () => {
    expect(billingCodeOf({ type: 'error', error: { type: 'billing_error', message: 'credit balance too low' } })).toBe('billing_error');
  });

  it('leaves rate limits and anything unreadable alone', () => {
    expect(billingCodeOf({ error: { type: 'requests', code: 'rate_limit_exceeded' } })).toBeUndefined();
    expect(billingCodeOf({ type: 'error', error: { type: 'rate_limit_error' } })).toBeUndefined();
    expect(billingCodeOf('<html>429</html>')).toBeUndefined();
    expect(billingCodeOf(undefined)).toBeUndefined();
  });
});
