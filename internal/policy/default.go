package policy

// DefaultText is the policy's text when the operator configures none (--policy-file):
// a placeholder that says what it is, to be replaced by the operator's own policy.
const DefaultText = `# Privacy policy

This is the privacy policy of this site. The operator has not configured its own text
yet (steward --policy-file), so this placeholder stands in for it.

## Who is responsible

The operator of this site is the controller of your personal data. The contact of its
data protection officer is on the page "Ask about your data".

## What we keep and why

We keep only what you give us, for the purposes listed on the page "How we use your
data", each with its lawful basis. Purposes that need your consent wait for it, and you
can withdraw it at any time.

## Your rights

You can see, export, correct and delete your data from your account, and ask us about
it at any time.

## Changes to this policy

Every version of this policy is kept and shown. When a change matters to you, we tell
you at your next visit and by mail, and ask again for the choices that depend on it.
`
