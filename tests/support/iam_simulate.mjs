// Evaluate IAM requests with @cloud-copilot/iam-simulate (a maintained evaluator: identity + resource policies,
// every condition operator). Input (stdin): a JSON array of {principal, action, resource, account, context,
// identityPolicies: [policy documents], resourcePolicy: document | null}. Output (stdout): a JSON array of
// {result: "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error", errors}, one per request, same order.
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const results = []
for (const request of requests) {
  const simulation = {
    identityPolicies: request.identityPolicies.map((policy, index) => ({ name: `policy${index}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy ?? undefined,
    request: {
      action: request.action,
      principal: request.principal,
      resource: { accountId: request.account, resource: request.resource },
      contextVariables: request.context ?? {},
    },
  }
  try {
    const response = await runSimulation(simulation, {})
    if (response.resultType === 'error') {
      results.push({ result: 'Error', errors: response.errors })
    } else {
      results.push({ result: response.overallResult, errors: null })
    }
  } catch (error) {
    results.push({ result: 'Error', errors: String(error) })
  }
}
process.stdout.write(JSON.stringify(results))
