// Grants the jobs' identity Cognitive Services OpenAI User on an existing Azure OpenAI account.

@description('Name of the existing Azure OpenAI account, in the resource group this module is deployed to.')
param accountName string

@description('Object id of the identity the jobs run as.')
param principalId string

// Built-in role definition (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var cognitiveServicesOpenAIUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2023-05-01' existing = {
  name: accountName
}

resource openAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
